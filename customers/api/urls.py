from django.urls import path
from rest_framework.routers import SimpleRouter

from customers.api import views

router = SimpleRouter()
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("push-subscriptions", views.PushSubscriptionViewSet, basename="push-subscription")
router.register("orders", views.OrderViewSet, basename="order")
router.register("events", views.EventViewSet, basename="event")

urlpatterns = [
    path("consent/confirm/", views.ConfirmDoubleOptInView.as_view(), name="consent-confirm"),
    *router.urls,
]

from django.urls import path
from rest_framework.routers import SimpleRouter

from campaigns.api import views

router = SimpleRouter()
router.register("campaigns", views.CampaignViewSet, basename="campaign")

urlpatterns = [
    path("templates/preview/", views.TemplatePreviewView.as_view(), name="template-preview"),
    *router.urls,
]

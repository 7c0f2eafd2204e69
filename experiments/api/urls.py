from django.urls import path
from rest_framework.routers import SimpleRouter

from experiments.api import views

router = SimpleRouter()
router.register("experiments", views.ExperimentViewSet, basename="experiment")

urlpatterns = [
    path("experiments/holdout/", views.HoldoutReportView.as_view(), name="experiment-holdout"),
    *router.urls,
]

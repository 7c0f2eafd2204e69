from django.urls import path

from segments.features.api import views

urlpatterns = [
    path("analytics/rfm/", views.RFMSummaryView.as_view(), name="analytics-rfm"),
    path("analytics/clusters/", views.ClusterSummaryView.as_view(), name="analytics-clusters"),
    path("analytics/clv/", views.CLVSummaryView.as_view(), name="analytics-clv"),
    path("analytics/recompute/", views.RecomputeView.as_view(), name="analytics-recompute"),
    path(
        "customers/<str:external_id>/features/",
        views.CustomerFeaturesView.as_view(),
        name="customer-features",
    ),
]

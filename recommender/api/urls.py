from django.urls import path, re_path

from recommender.api import views

urlpatterns = [
    re_path(
        r"^customers/(?P<external_id>[^/]+)/recommendations/?$",
        views.CustomerRecommendationsView.as_view(),
        name="customer-recommendations",
    ),
    re_path(
        r"^products/(?P<sku>[^/]+)/similar/?$", views.SimilarProductsView.as_view(), name="product-similar"
    ),
    path("recommender/models/", views.ModelVersionListView.as_view(), name="recommender-models"),
    path("recommender/models/<int:pk>/", views.ModelVersionDetailView.as_view(), name="recommender-model"),
    path(
        "recommender/models/<int:pk>/promote/", views.PromoteView.as_view(), name="recommender-model-promote"
    ),
    path("recommender/configs/<int:pk>/train/", views.TrainView.as_view(), name="recommender-config-train"),
    path(
        "recommender/configs/<int:pk>/rollback/",
        views.RollbackView.as_view(),
        name="recommender-config-rollback",
    ),
]

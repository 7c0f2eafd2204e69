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
    # Any id segment reaches the view, so that an id that is not a number is a JSON 404 like a
    # missing one (not Django's HTML page).
    re_path(
        r"^recommender/models/(?P<pk>[^/]+)/$",
        views.ModelVersionDetailView.as_view(),
        name="recommender-model",
    ),
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

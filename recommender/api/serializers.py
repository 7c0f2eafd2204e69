from __future__ import annotations

from rest_framework import serializers

from recommender.models import ModelVersion

CONTEXTS = ("web", "home", "product", "cart", "email", "push", "app")


class RecommendationQuerySerializer(serializers.Serializer):
    n = serializers.IntegerField(min_value=1, max_value=100, default=10)
    category = serializers.CharField(max_length=500, required=False, allow_blank=False)
    context = serializers.ChoiceField(choices=CONTEXTS, required=False)
    config = serializers.SlugField(
        max_length=64, required=False, help_text="Recommender config (default: the default one)"
    )


class SimilarQuerySerializer(serializers.Serializer):
    n = serializers.IntegerField(min_value=1, max_value=100, default=10)
    config = serializers.SlugField(max_length=64, required=False)


class ProductCardSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    url = serializers.CharField(allow_blank=True)
    image_url = serializers.CharField(allow_blank=True)
    price = serializers.CharField()
    currency = serializers.CharField()
    category = serializers.CharField(allow_blank=True)
    brand = serializers.CharField(allow_blank=True)
    score = serializers.FloatField(allow_null=True)
    explanation = serializers.CharField(allow_blank=True)
    because = serializers.ListField(child=serializers.CharField())


class CustomerRecommendationsSerializer(serializers.Serializer):
    customer = serializers.CharField()
    context = serializers.CharField(allow_null=True)
    source = serializers.ChoiceField(
        choices=["stored", "realtime", "cold_start", "popular"],
        help_text="stored rows, real-time scoring, the cold-start list of an unknown customer, or popularity",
    )
    model_version = serializers.IntegerField(allow_null=True)
    items = ProductCardSerializer(many=True)


class SimilarProductsSerializer(serializers.Serializer):
    sku = serializers.CharField()
    source = serializers.ChoiceField(choices=["model", "category"])
    model_version = serializers.IntegerField(allow_null=True)
    items = ProductCardSerializer(many=True)


class ModelVersionSerializer(serializers.ModelSerializer):
    config = serializers.SlugRelatedField(slug_field="name", read_only=True)
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "config",
            "algorithm",
            "params",
            "status",
            "is_active",
            "metrics",
            "n_customers",
            "n_products",
            "n_interactions",
            "fit_seconds",
            "error",
            "created_at",
            "trained_at",
            "scored_at",
            "promoted_at",
            "previous_version",
        ]
        read_only_fields = fields

    def get_is_active(self, obj) -> bool:
        return obj.config.active_version_id == obj.pk


class TrainAcceptedSerializer(serializers.Serializer):
    version = ModelVersionSerializer()
    queued = serializers.BooleanField()

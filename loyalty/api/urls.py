from rest_framework.routers import SimpleRouter

from loyalty.api import views

router = SimpleRouter()
router.register("loyalty/programs", views.ProgramViewSet, basename="loyalty-program")
router.register("loyalty/tiers", views.TierViewSet, basename="loyalty-tier")
router.register("loyalty/members", views.MembershipViewSet, basename="loyalty-member")
router.register("loyalty/transactions", views.TransactionViewSet, basename="loyalty-transaction")
router.register("loyalty/rewards", views.RewardViewSet, basename="loyalty-reward")
urlpatterns = router.urls

"""The baseline's routes: a DefaultRouter-style list and detail, without trailing slashes."""

from rest_framework.routers import SimpleRouter

from .views import JobTaskViewSet

router = SimpleRouter(trailing_slash=False)
router.register("arvados/v1/job_tasks", JobTaskViewSet, basename="jobtask")
urlpatterns = router.urls

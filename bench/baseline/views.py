"""The baseline's API, tutorial style: ModelSerializer, ModelViewSet, filters, pagination."""

from __future__ import annotations

import hashlib
import json
from datetime import timezone as dt_timezone

from django.db.models import Q
from django.utils import timezone
from rest_framework import serializers, viewsets

from job_tasks.models import GroupIdentity, JobTask, next_qsequence
from job_tasks.uuids import JOB_TASK_INFIX, base36, new_uuid

STORED = [
    "uuid",
    "owner_uuid",
    "created_at",
    "modified_by_client_uuid",
    "modified_by_user_uuid",
    "modified_at",
    "job_uuid",
    "created_by_job_task_uuid",
    "sequence",
    "qsequence",
    "parameters",
    "output",
    "progress",
    "success",
    "started_at",
    "finished_at",
]


class JobTaskSerializer(serializers.ModelSerializer):
    href = serializers.SerializerMethodField()
    kind = serializers.SerializerMethodField()
    etag = serializers.SerializerMethodField()
    parameters = serializers.JSONField(required=False)

    class Meta:
        model = JobTask
        fields = ["href", "kind", "etag", *STORED]
        read_only_fields = [
            "uuid",
            "owner_uuid",
            "created_at",
            "modified_by_client_uuid",
            "modified_by_user_uuid",
            "modified_at",
            "qsequence",
        ]

    def get_href(self, obj):
        return f"/job_tasks/{obj.uuid}"

    def get_kind(self, obj):
        return "arvados#jobTask"

    def get_etag(self, obj):
        values = []
        for name in STORED:
            value = getattr(obj, name)
            if hasattr(value, "isoformat"):
                value = value.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
            values.append(value)
        dump = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.md5(dump.encode()).digest()
        return base36(int.from_bytes(digest, "big"))


class JobTaskViewSet(viewsets.ModelViewSet):
    serializer_class = JobTaskSerializer
    lookup_field = "uuid"
    filterset_fields = {"job_uuid": ["exact"], "created_at": ["gte"]}
    ordering_fields = ["created_at", "uuid", "modified_at"]
    ordering = ["-modified_at", "uuid"]

    def get_queryset(self):
        user = self.request.user
        groups = GroupIdentity.objects.filter(group__user=user).values("uuid")
        owner = user.job_tasks_identity.uuid
        return JobTask.objects.filter(Q(owner_uuid=owner) | Q(owner_uuid__in=groups))

    def perform_create(self, serializer):
        now = timezone.now()
        serializer.save(
            uuid=new_uuid(JOB_TASK_INFIX),
            owner_uuid=self.request.user.job_tasks_identity.uuid,
            modified_by_user_uuid=self.request.user.job_tasks_identity.uuid,
            created_at=now,
            modified_at=now,
            qsequence=next_qsequence("default"),
        )

    def perform_update(self, serializer):
        serializer.save(
            modified_at=timezone.now(),
            modified_by_user_uuid=self.request.user.job_tasks_identity.uuid,
        )

    def update(self, request, *args, **kwargs):
        kwargs["partial"] = True  # PUT is partial in Arvados
        return super().update(request, *args, **kwargs)

"""Stable uuids for users and groups, and the cluster id (spec §3, §15.2)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from job_tasks.identities import group_uuid, user_uuid
from tests.conftest import new_user

pytestmark = pytest.mark.django_db


def test_user_uuid_is_stable_and_well_formed():
    user = new_user("carol")
    first = user_uuid(user)
    again = user_uuid(get_user_model().objects.get(pk=user.pk))
    assert first == again
    assert re.match(r"^zzzzz-tpzed-[0-9a-z]{15}$", first)


def test_group_uuid_is_stable_and_well_formed():
    group = Group.objects.create(name="lab")
    assert group_uuid(group) == group_uuid(Group.objects.get(pk=group.pk))
    assert re.match(r"^zzzzz-j7d0g-[0-9a-z]{15}$", group_uuid(group))


def test_different_users_get_different_uuids():
    users = [new_user(f"u{n}") for n in range(20)]
    assert len({user_uuid(user) for user in users}) == 20


def test_cluster_id_comes_from_settings(settings, alice):
    settings.JOB_TASKS = {"CLUSTER_ID": "x1y2z"}
    response = alice.client.post("/arvados/v1/job_tasks")
    assert response.json()["uuid"].startswith("x1y2z-ot0gb-")

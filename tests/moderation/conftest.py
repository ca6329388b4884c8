"""Personas for the staff console: who may moderate and who must be refused."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.test import Client


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root(db: None) -> User:
    """The operator: a superuser, allowed everything."""
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def moderator(db: None) -> User:
    """Mia moderates: staff, in the Moderators group made by `setup_moderators`."""
    call_command("setup_moderators", stdout=io.StringIO())
    user = User.objects.create_user("mia", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return user


@pytest.fixture
def charlie(db: None) -> User:
    """Charlie is staff and may look at everything, but holds no change, export or publish permission."""
    user = User.objects.create_user("charlie", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return user


@pytest.fixture
def dave(db: None) -> User:
    """Dave has an account but is not staff."""
    return User.objects.create_user("dave")

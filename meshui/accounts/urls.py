from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

# Mounted at /accounts/; the names are Django's (LOGIN_URL = "login").
urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]

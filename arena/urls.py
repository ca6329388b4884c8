from django.contrib import admin
from django.urls import include, path

from arena import views
from voting import views as voting_views

arena_patterns = [
    path("", views.home, name="home"),
    path("b/<str:code>/", views.battle_page, name="battle"),
    path("api/battles", views.battle_start, name="battle-start"),
    path("api/battles/<str:code>", views.battle_state_view, name="battle-state"),
    path("api/battles/<str:code>/continue", views.battle_continue, name="battle-continue"),
    path("api/battles/<str:code>/vote", voting_views.vote, name="vote"),
    path("api/prompts/random", views.prompt_random, name="prompt-random"),
]

urlpatterns = [
    path("", include((arena_patterns, "arena"))),
    path("admin/", admin.site.urls),
]

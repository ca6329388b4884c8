from django.contrib import admin
from django.urls import include, path

from arena import api, docs, health, views
from arena.admin_login import login_rate_limited
from voting import views as voting_views

arena_patterns = [
    path("", views.home, name="home"),
    path("b/<str:code>/", views.battle_page, name="battle"),
    path("api/battles", views.battle_start, name="battle-start"),
    path("api/battles/<str:code>", views.battle_state_view, name="battle-state"),
    path("api/battles/<str:code>/continue", views.battle_continue, name="battle-continue"),
    path("api/battles/<str:code>/vote", voting_views.vote, name="vote"),
    path("api/battles/<str:code>/skip", views.battle_skip, name="battle-skip"),
    path("api/battles/<str:code>/regenerate", views.battle_regenerate, name="battle-regenerate"),
    path("api/prompts/random", views.prompt_random, name="prompt-random"),
    path("image/", views.home, {"modality": "image"}, name="home-image"),
    path("3d/", views.home, {"modality": "3d"}, name="home-3d"),
    # Image and 3D files, reached only through the battle (or a public thumbnail's random token).
    path("m/<str:code>/<int:turn>/<str:side>.<str:ext>", views.battle_media, name="battle-media"),
    path("m/<str:code>/input.<str:ext>", views.battle_input_media, name="battle-input"),
    path("m/thumbs/<str:token>.png", views.thumbnail, name="thumbnail"),
]
# Vote integrity: the proof-of-work challenge a vote must carry.
arena_patterns += [
    path("api/battles/<str:code>/challenge", voting_views.challenge, name="vote-challenge"),
]

# The public read-only API, its OpenAPI document, and the staff export.
arena_patterns += [
    path("api/v1/leaderboards/<str:modality>", api.leaderboard, name="api-leaderboard"),
    path("api/v1/stats", api.stats, name="api-stats"),
    path("api/v1/openapi.json", api.openapi, name="api-openapi"),
    path("api/docs/", docs.api_docs, name="api-docs"),  # the document above, readable (Swagger UI)
    path("api/export/battles.<str:fmt>", api.export_battles, name="api-export-battles"),
]

# Password guessing against the admin is limited per client address (ARENA_ADMIN_LOGIN_RATE).
admin.site.login = login_rate_limited(admin.site.login)  # type: ignore[method-assign]

# Site-styled pages; JSON for /api/ paths and JSON requests (arena.error_pages).
handler404 = "arena.error_pages.page_not_found"
handler500 = "arena.error_pages.server_error"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("", include((arena_patterns, "arena"))),
    path("", include("ranking.urls")),
    path("admin/", admin.site.urls),
]

from django.urls import path, re_path

from arena.consumers import BattleConsumer, NoRouteConsumer
from ranking.consumers import LeaderboardConsumer

websocket_urlpatterns = [
    path("ws/battle/<str:code>/", BattleConsumer.as_asgi()),
    path("ws/leaderboard/<str:modality>/", LeaderboardConsumer.as_asgi()),
    re_path(r"", NoRouteConsumer.as_asgi()),  # last: anything else is refused, not a router error
]

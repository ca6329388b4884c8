from django.urls import path

from arena.consumers import BattleConsumer
from ranking.consumers import LeaderboardConsumer

websocket_urlpatterns = [
    path("ws/battle/<str:code>/", BattleConsumer.as_asgi()),
    path("ws/leaderboard/<str:modality>/", LeaderboardConsumer.as_asgi()),
]

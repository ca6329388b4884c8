from django.urls import path

from ranking import views

app_name = "ranking"

urlpatterns = [
    path("leaderboard/", views.leaderboard_home, name="leaderboard-home"),
    path("leaderboard/<str:modality>/", views.leaderboard_page, name="leaderboard"),
    path("api/leaderboard/<str:modality>", views.leaderboard_json, name="leaderboard-json"),
]

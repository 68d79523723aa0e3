from django.urls import path, re_path

from services.frontend import views

urlpatterns = [
    path("v1/predict", views.serve),
    re_path(r"^v1/models/", views.serve),  # TF Serving REST
    re_path(r"^v2(?:/|$)", views.serve),  # KServe v2
    path("v1/info", views.info),
    path("healthz", views.healthz),
]

handler400 = views.bad_request
handler404 = views.not_found
handler500 = views.server_error

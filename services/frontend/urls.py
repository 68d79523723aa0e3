from django.urls import path

from services.frontend import views

urlpatterns = [
    path("v1/predict", views.predict),
    path("v1/info", views.info),
    path("healthz", views.healthz),
]

handler400 = views.bad_request
handler404 = views.not_found
handler500 = views.server_error

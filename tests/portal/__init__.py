"""Tests of the web app (portal/): factory, auth, console views, browser behaviour."""

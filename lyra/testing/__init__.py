"""Reusable test kit: fakes and builders that tests, notebooks and users can share."""

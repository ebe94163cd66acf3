"""Modules the tests import as a user's own code (``--model tests.helpers.mymodel:build``)."""

"""gradcheck's hypothesis profiles for pytest: ``gradcheck-dev``, ``gradcheck-ci``, ``gradcheck-thorough``.

The pytest plugin itself is the top-level module ``_gradcheck_pytestplugin`` (entry point
``pytest11: gradcheck``): pytest loads it in every run of an environment where gradcheck is installed,
and a module inside this package would import ``gradcheck/__init__``, hence torch, each time. See that
module for the profiles and how to ask for one (``--hypothesis-profile gradcheck-ci`` or
``GRADCHECK_PROFILE=ci``). This module is its public name for code that imports gradcheck anyway, such as
a conftest that loads a profile by default or a script that calls ``register_profiles()``.
"""

from __future__ import annotations

from _gradcheck_pytestplugin import (
    PROFILE_ENV,
    PROFILE_NAMES,
    SHORT_NAMES,
    profile_name,
    profile_options,
    register_profiles,
    requested_profile,
)

__all__ = ["PROFILE_ENV", "PROFILE_NAMES", "SHORT_NAMES", "profile_name", "profile_options",
           "register_profiles", "requested_profile"]

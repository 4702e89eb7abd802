# Copyright (c) mmhand2p contributors. All rights reserved.
from .body_models import *  # noqa: F401,F403

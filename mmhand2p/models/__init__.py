# Copyright (c) mmhand2p contributors. All rights reserved.
from .body_models import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .reconstructors import *  # noqa: F401,F403
from .refiners import *  # noqa: F401,F403
from .teachers import *  # noqa: F401,F403

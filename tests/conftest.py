# Copyright (c) mmhand2p contributors. All rights reserved.
import os
import os.path as osp

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_DIR = os.environ.get('MMHAND2P_SHARED',
                            osp.join(osp.dirname(REPO_ROOT), 'shared'))


@pytest.fixture(scope='session')
def shared_fixtures():
    """``../shared/fixtures`` (real-format files), or skip with the reason.

    A user's fresh clone has no ``../shared``; CI and developers' checkouts
    do (set ``MMHAND2P_SHARED`` to point elsewhere).
    """
    path = osp.join(SHARED_DIR, 'fixtures')
    if not osp.isdir(path):
        pytest.skip(f'real-format fixtures not found at {path} (they live in '
                    'the project\'s shared/ folder, not in the repository)')
    return path


@pytest.fixture(autouse=True, scope='session')
def _registered():
    from mmhand2p.utils import register_all_modules
    register_all_modules(init_default_scope=True)

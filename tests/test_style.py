# Copyright (c) mmhand2p contributors. All rights reserved.
"""The code style of ``setup.cfg`` ([flake8], [isort]) holds for the whole
tree: the package, tools, demo, configs and tests. CI runs exactly the
README's test command, so the style is checked here, by the suite; fix a
failure with ``isort FILE`` and the flake8 message."""
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TREES = ('mmhand2p', 'tools', 'demo', 'configs', 'tests', 'setup.py')


def _run(module, *args):
    return subprocess.run([sys.executable, '-m', module, *args, *TREES],
                          cwd=REPO,
                          capture_output=True,
                          text=True)


def test_checkers_are_installed():
    """The checkers come with requirements/tests.txt: a missing one is a
    set-up failure, not a reason to skip the style tests."""
    for module in ('flake8', 'isort'):
        proc = subprocess.run([sys.executable, '-m', module, '--version'],
                              capture_output=True,
                              text=True)
        assert proc.returncode == 0, (
            f'{module} is not installed in {sys.executable}: run '
            f'tools/setup_env.sh (requirements/tests.txt) ({proc.stderr})')


def test_flake8_clean():
    proc = _run('flake8')
    assert proc.returncode == 0, (
        f'flake8 (settings in setup.cfg) found problems:\n{proc.stdout}'
        f'{proc.stderr}')


def test_isort_clean():
    proc = _run('isort', '--check-only', '--diff', '--settings-path',
                osp.join(REPO, 'setup.cfg'))
    assert proc.returncode == 0, (
        f'imports not sorted as setup.cfg [isort] says (run `isort FILE`):'
        f'\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}')


@pytest.mark.parametrize('bad, code', [
    ('import os\n', 'F401'),
    ('x = 1  \n', 'W291'),
    ('y = "' + 'a' * 80 + '"\n', 'E501'),
])
def test_flake8_catches_a_violation(tmp_path, bad, code):
    """The check above can fail: the same settings flag a planted
    violation."""
    f = tmp_path / 'bad.py'
    f.write_text(bad)
    proc = subprocess.run([
        sys.executable, '-m', 'flake8', '--config',
        osp.join(REPO, 'setup.cfg'),
        str(f)
    ],
                          capture_output=True,
                          text=True)
    assert proc.returncode != 0 and code in proc.stdout, proc.stdout


def test_isort_catches_unsorted_imports(tmp_path):
    f = tmp_path / 'bad.py'
    f.write_text('import sys\nimport os\n')
    proc = subprocess.run([
        sys.executable, '-m', 'isort', '--check-only', '--settings-path',
        osp.join(REPO, 'setup.cfg'),
        str(f)
    ],
                          capture_output=True,
                          text=True)
    assert proc.returncode != 0, proc.stdout + proc.stderr

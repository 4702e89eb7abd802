# Copyright (c) mmhand2p contributors. All rights reserved.
import os.path as osp
from setuptools import find_packages, setup


def readme() -> str:
    path = osp.join(osp.dirname(__file__), 'README.md')
    with open(path, encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmhand2p', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    """Read requirement specs from ``requirements/<fname>``, skipping
    comments."""
    path = osp.join(osp.dirname(__file__), 'requirements', fname)
    reqs = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


if __name__ == '__main__':
    setup(
        name='mmhand2p',
        version=get_version(),
        description='OpenMMLab 2.x library for monocular two-hand 3D '
        'reconstruction with MANO (A2P, DIR, ACR)',
        long_description=readme(),
        long_description_content_type='text/markdown',
        author='mmhand2p contributors',
        keywords='computer vision, hand pose, MANO, two hands, diffusion',
        packages=find_packages(exclude=('configs', 'tools', 'demo', 'tests')),
        include_package_data=True,
        package_data={'mmhand2p': ['assets/*.npz', 'assets/*.json',
                                   'assets/*.md', 'apis/*.json']},
        python_requires='>=3.8',
        classifiers=[
            'License :: OSI Approved :: Apache Software License',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        license='Apache License 2.0',
        install_requires=parse_requirements('runtime.txt'),
        extras_require={
            'tests': parse_requirements('tests.txt'),
            'optional': parse_requirements('optional.txt'),
            'mim': parse_requirements('mminstall.txt'),
        },
        zip_safe=False)

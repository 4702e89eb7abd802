# Copyright (c) mmhand2p contributors. All rights reserved.

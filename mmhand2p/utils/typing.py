# Copyright (c) mmhand2p contributors. All rights reserved.
"""Type aliases shared by signatures (as in mmpose / mmdet)."""
from typing import Dict, List, Optional, Sequence, Union

from mmengine.config import ConfigDict
from mmengine.structures import BaseDataElement

ConfigType = Union[ConfigDict, dict]
OptConfigType = Optional[ConfigType]
MultiConfig = Union[ConfigType, List[ConfigType]]
OptMultiConfig = Optional[MultiConfig]
SampleList = List[BaseDataElement]
OptSampleList = Optional[SampleList]
ForwardResults = Union[Dict, List, Sequence]

"""bench/compare.py in sections: qgemm against every installed peer, side by side.

cli (options, the run loop, the header and the targets), config (the options
every section reads), timing, report (tables, exactness, targets), peers (ONNX
Runtime / PyTorch runners), machine (CPU and load), then one module per section.
"""

import os
import sys

# The exact references live with the tests (tests/reference.py): one copy for both.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))

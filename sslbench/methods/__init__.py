"""One LightningModule per method; all share ``LocalizationMethod``."""

from sslbench.methods.avgn import AVGN
from sslbench.methods.base import LocalizationMethod
from sslbench.methods.ezvsl import EZVSL
from sslbench.methods.fnac import FNAC
from sslbench.methods.icl import ICL
from sslbench.methods.ioi import IOI
from sslbench.methods.lvs import LVS
from sslbench.methods.ogl import ObjectGuidance
from sslbench.methods.slavc import SLAVC
from sslbench.methods.ssl_align import SSLAlign
from sslbench.methods.ssl_tie import SSLTIE
from sslbench.methods.sspl import SSPL

__all__ = ["AVGN", "EZVSL", "FNAC", "ICL", "IOI", "LVS", "SLAVC", "SSLAlign", "SSLTIE", "SSPL", "LocalizationMethod", "ObjectGuidance"]

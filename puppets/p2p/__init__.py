"""P2P over the switchboard (MSNC framing, MSNSLP sessions): display pictures, custom
emoticons and file transfers. Kept apart from the connections, as papyon's ``msnp2p``."""

from .filecontext import FileContext
from .header import Flags, Frame, FrameV2, Header, P2PFormatError, parse_frame, parse_frame_v2
from .manager import ObjectFetchError, P2PManager
from .pictures import PictureCache
from .service import P2PService
from .slp import SLPError, SLPMessage, parse_slp
from .transfer import IncomingFile, OutgoingFile, Transfer, TransferError

__all__ = [
    "FileContext",
    "Flags",
    "Frame",
    "FrameV2",
    "Header",
    "IncomingFile",
    "ObjectFetchError",
    "OutgoingFile",
    "P2PFormatError",
    "P2PManager",
    "P2PService",
    "PictureCache",
    "SLPError",
    "SLPMessage",
    "Transfer",
    "TransferError",
    "parse_frame",
    "parse_frame_v2",
    "parse_slp",
]

"""Video: stylise clips frame by frame in bounded memory, with their sound, without flicker.

- io.py: decoding and encoding with PyAV (codecs, audio passthrough, atomic output);
- stabilize.py: the network's input denoised along the optical flow and its features blended
  with the previous frame's along it (the default), shared instance-norm statistics, and
  temporal blends of the outputs;
- motion.py: optical flow between frames (OpenCV), warping and the visibility check;
- flicker.py: the flicker measures (output change beyond the input's own change; warping error);
- pipeline.py: a file in, a stylised file out.
"""

from fast_style.video.io import VIDEO_SUFFIXES, is_video
from fast_style.video.pipeline import VideoOptions, stylize_video
from fast_style.video.stabilize import StabilizeOptions, Stabilizer

__all__ = ["VIDEO_SUFFIXES", "StabilizeOptions", "Stabilizer", "VideoOptions", "is_video",
           "stylize_video"]

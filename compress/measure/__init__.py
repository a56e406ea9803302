"""Measurement: size, accuracy, latency and memory of a flatbuffer, read and timed the same way
for every row, the teacher included.  It never knows which strategy made a model.

May import ``compress.models``, ``compress.data`` and ``compress.common``; never a strategy.
"""

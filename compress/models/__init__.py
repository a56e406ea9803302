"""Models, in both forms the pipeline handles: Keras models (architectures, training settings,
the teacher and its cache, the Keras 3 translation, the stage cache of chains) and TFLite
flatbuffers (run in LiteRT, read op by op).

``models.backend`` is the one module that imports TensorFlow, tf_keras, tfmot and LiteRT.
May import ``compress.data`` and ``compress.common``.
"""

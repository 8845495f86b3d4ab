"""Every Keras layer of the catalog (spec/catalog/layers.json): how a spec builds it.

`CASES` holds one case per layer that a spec can build from literal arguments: the
minimal call, the inputs it is applied to and, where it is not applied as
`x |> CALL`, the expression that applies it (two inputs for merge and attention
layers, a list for `Add()([a, b])`). `UNSUPPORTED` names the layers a spec cannot
build, each with the reason. tests/test_every_layer.py builds every case with
TensorFlow, and docs/layers.md lists both.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest


class Case(NamedTuple):
    """A spec that builds `layer`: `model M functional { INPUTS  output y = APPLY }`.

    `apply` None means `x |> CALL`, with the one input `x`. `kind` "subclass" writes
    the same body as a subclassed model; `kind` "sequential" writes
    `model M sequential { INPUTS  CALL  THEN… }`. `{savedmodel}` in `call` stands for
    the path of a SavedModel that the test exports first.
    """

    layer: str  # the catalog name
    call: str  # the minimal construction, as written in a spec
    inputs: str  # input declarations, one per line
    apply: str | None = None  # the output expression, when not `x |> CALL`
    kind: str = "functional"  # "functional", "subclass" or "sequential"
    then: tuple[str, ...] = ()  # sequential only: the layers after CALL


SAVEDMODEL = "{savedmodel}"


def spec_text(case: Case, savedmodel: str = "savedmodel") -> str:
    """The whole spec of a case (`savedmodel`: the path that replaces `{savedmodel}`)."""
    inputs = [line.strip() for line in case.inputs.splitlines() if line.strip()]
    if case.kind == "sequential":
        body = [*inputs, case.call, *case.then]
    else:
        apply = case.apply if case.apply is not None else f"x |> {case.call}"
        body = [*inputs, f"output y = {apply}"]
    lines = "".join(f"  {line}\n" for line in body).replace(SAVEDMODEL, savedmodel)
    return f"tfspec 1\n\nmodel M {case.kind} {{\n{lines}}}\n"


# Input declarations used by many cases.
VEC = "input x: float32[4]"
SEQ = "input x: float32[6, 3]"  # (steps, features)
IMG = "input x: float32[8, 8, 3]"  # (height, width, channels)
VOL = "input x: float32[4, 4, 4, 2]"  # (depth, height, width, channels)
PAIR = "input a: float32[4]\ninput b: float32[4]"
QV = "input q: float32[3, 4]\ninput v: float32[5, 4]"  # query, value
INTS = "input x: int32[3]"  # token ids in [0, 4)
TEXT = "input x: string[]"  # one string per example
AUDIO = "input x: float32[256]"  # mono samples


def _merge(name: str, call: str | None = None) -> Case:
    call = call or f"{name}()"
    return Case(name, call, PAIR, f"{call}([a, b])")


def _function(name: str, extra: str = "") -> Case:
    """The functional form of a merge layer: `add([a, b])`."""
    return Case(name, f"{name}([a, b]{extra})", PAIR, f"{name}([a, b]{extra})")


CASES = [
    # -- core ---------------------------------------------------------------------------
    Case("Activation", 'Activation("relu")', VEC),
    Case("ActivityRegularization", "ActivityRegularization()", VEC),
    Case("Dense", "Dense(4)", VEC),
    Case("EinsumDense", 'EinsumDense("ab,bc->ac", 4)', VEC),
    Case("Embedding", "Embedding(10, 4)", INTS),
    Case("Identity", "Identity()", VEC),
    Case("Masking", "Masking()", SEQ),
    Case("ReversibleEmbedding", "ReversibleEmbedding(10, 4)", INTS),
    Case("TFSMLayer", f'TFSMLayer("{SAVEDMODEL}")', VEC),  # a model exported to disk
    Case("InputLayer", "InputLayer(shape = [4])", "", kind="sequential", then=("Dense(2)",)),
    # -- activations --------------------------------------------------------------------
    Case("ELU", "ELU()", VEC),
    Case("LeakyReLU", "LeakyReLU()", VEC),
    Case("PReLU", "PReLU()", VEC),
    Case("ReLU", "ReLU()", VEC),
    Case("Softmax", "Softmax()", VEC),
    # -- convolution --------------------------------------------------------------------
    Case("Conv1D", "Conv1D(4, 3)", SEQ),
    Case("Conv1DTranspose", "Conv1DTranspose(4, 3)", SEQ),
    Case("Conv2D", "Conv2D(4, 3)", IMG),
    Case("Conv2DTranspose", "Conv2DTranspose(4, 3)", IMG),
    Case("Conv3D", "Conv3D(2, 2)", VOL),
    Case("Conv3DTranspose", "Conv3DTranspose(2, 2)", VOL),
    Case("DepthwiseConv1D", "DepthwiseConv1D(3)", SEQ),
    Case("DepthwiseConv2D", "DepthwiseConv2D(3)", IMG),
    Case("SeparableConv1D", "SeparableConv1D(4, 3)", SEQ),
    Case("SeparableConv2D", "SeparableConv2D(4, 3)", IMG),
    # -- pooling ------------------------------------------------------------------------
    Case("AdaptiveAveragePooling1D", "AdaptiveAveragePooling1D(2)", SEQ),
    Case("AdaptiveAveragePooling2D", "AdaptiveAveragePooling2D(2)", IMG),
    Case("AdaptiveAveragePooling3D", "AdaptiveAveragePooling3D(2)", VOL),
    Case("AdaptiveMaxPooling1D", "AdaptiveMaxPooling1D(2)", SEQ),
    Case("AdaptiveMaxPooling2D", "AdaptiveMaxPooling2D(2)", IMG),
    Case("AdaptiveMaxPooling3D", "AdaptiveMaxPooling3D(2)", VOL),
    Case("AveragePooling1D", "AveragePooling1D(2)", SEQ),
    Case("AveragePooling2D", "AveragePooling2D(2)", IMG),
    Case("AveragePooling3D", "AveragePooling3D(2)", VOL),
    Case("MaxPooling1D", "MaxPooling1D()", SEQ),
    Case("MaxPooling2D", "MaxPooling2D()", IMG),
    Case("MaxPooling3D", "MaxPooling3D()", VOL),
    Case("GlobalAveragePooling1D", "GlobalAveragePooling1D()", SEQ),
    Case("GlobalAveragePooling2D", "GlobalAveragePooling2D()", IMG),
    Case("GlobalAveragePooling3D", "GlobalAveragePooling3D()", VOL),
    Case("GlobalMaxPooling1D", "GlobalMaxPooling1D()", SEQ),
    Case("GlobalMaxPooling2D", "GlobalMaxPooling2D()", IMG),
    Case("GlobalMaxPooling3D", "GlobalMaxPooling3D()", VOL),
    # -- recurrent ----------------------------------------------------------------------
    Case("GRU", "GRU(4)", SEQ),
    Case("LSTM", "LSTM(4)", SEQ),
    Case("SimpleRNN", "SimpleRNN(4)", SEQ),
    Case("GRUCell", "RNN(GRUCell(4))", SEQ),
    Case("LSTMCell", "RNN(LSTMCell(4))", SEQ),
    Case("SimpleRNNCell", "RNN(SimpleRNNCell(4))", SEQ),
    Case("RNN", "RNN(LSTMCell(4))", SEQ),
    Case("StackedRNNCells", "RNN(StackedRNNCells([LSTMCell(4), GRUCell(4)]))", SEQ),
    Case("ConvLSTM1D", "ConvLSTM1D(2, 3)", "input x: float32[3, 8, 2]"),
    Case("ConvLSTM2D", "ConvLSTM2D(2, 3)", "input x: float32[3, 8, 8, 2]"),
    Case("ConvLSTM3D", "ConvLSTM3D(2, 2)", "input x: float32[2, 4, 4, 4, 1]"),
    # -- wrappers -----------------------------------------------------------------------
    Case("Bidirectional", "Bidirectional(LSTM(4))", SEQ),
    Case("TimeDistributed", "TimeDistributed(Dense(8))", SEQ),
    Case("SpectralNormalization", "SpectralNormalization(Dense(4))", VEC),
    Case("Pipeline", "Pipeline([Dense(4), ReLU()])", VEC),
    # -- merging ------------------------------------------------------------------------
    _merge("Add"),
    _merge("Average"),
    _merge("Concatenate"),
    _merge("Dot", "Dot(axes = 1)"),
    _merge("Maximum"),
    _merge("Minimum"),
    _merge("Multiply"),
    _merge("Subtract"),
    _function("add"),
    _function("average"),
    _function("concatenate"),
    _function("dot", ", axes = 1"),
    _function("maximum"),
    _function("minimum"),
    _function("multiply"),
    _function("subtract"),
    # -- attention ----------------------------------------------------------------------
    Case("AdditiveAttention", "AdditiveAttention()", QV, "AdditiveAttention()([q, v])"),
    Case("Attention", "Attention()", QV, "Attention()([q, v])"),
    Case("MultiHeadAttention", "MultiHeadAttention(2, 4)", QV,
         "MultiHeadAttention(2, 4)(q, v)"),
    Case("GroupQueryAttention", "GroupQueryAttention(4, 2, 1)", QV,
         "GroupQueryAttention(4, 2, 1)(q, v)"),
    # -- normalization ------------------------------------------------------------------
    Case("BatchNormalization", "BatchNormalization()", VEC),
    Case("GroupNormalization", "GroupNormalization(groups = 2)", VEC),
    Case("LayerNormalization", "LayerNormalization()", VEC),
    Case("RMSNormalization", "RMSNormalization()", VEC),
    Case("UnitNormalization", "UnitNormalization()", VEC),
    # -- regularization -----------------------------------------------------------------
    Case("AlphaDropout", "AlphaDropout(0.1)", VEC),
    Case("Dropout", "Dropout(0.5)", VEC),
    Case("GaussianDropout", "GaussianDropout(0.1)", VEC),
    Case("GaussianNoise", "GaussianNoise(0.1)", VEC),
    Case("SpatialDropout1D", "SpatialDropout1D(0.1)", SEQ),
    Case("SpatialDropout2D", "SpatialDropout2D(0.1)", IMG),
    Case("SpatialDropout3D", "SpatialDropout3D(0.1)", VOL),
    # -- reshaping ----------------------------------------------------------------------
    Case("Cropping1D", "Cropping1D()", SEQ),
    Case("Cropping2D", "Cropping2D()", IMG),
    Case("Cropping3D", "Cropping3D()", VOL),
    Case("Flatten", "Flatten()", SEQ),
    Case("Permute", "Permute([2, 1])", SEQ),
    Case("RepeatVector", "RepeatVector(2)", VEC),
    Case("Reshape", "Reshape([2, 2])", VEC),
    Case("UpSampling1D", "UpSampling1D()", SEQ),
    Case("UpSampling2D", "UpSampling2D()", IMG),
    Case("UpSampling3D", "UpSampling3D()", VOL),
    Case("ZeroPadding1D", "ZeroPadding1D()", SEQ),
    Case("ZeroPadding2D", "ZeroPadding2D()", IMG),
    Case("ZeroPadding3D", "ZeroPadding3D()", VOL),
    # -- preprocessing: numbers, categories, text ---------------------------------------
    Case("CategoryEncoding", "CategoryEncoding(num_tokens = 4)", INTS),
    Case("Discretization", "Discretization(bin_boundaries = [0.0, 0.5])", VEC),
    Case("HashedCrossing", "HashedCrossing(8)", "input a: int32[]\ninput b: int32[]",
         "HashedCrossing(8)([a, b])"),
    Case("Hashing", "Hashing(8)", INTS),
    Case("IntegerLookup", "IntegerLookup(vocabulary = [1, 2, 3])", INTS),
    Case("Normalization", "Normalization(mean = 0.0, variance = 1.0)", VEC),
    Case("Rescaling", "Rescaling(0.5)", VEC),
    Case("StringLookup", 'StringLookup(vocabulary = ["a", "b"])', TEXT),
    Case("TextVectorization", 'TextVectorization(vocabulary = ["a", "b"])', TEXT),
    # -- preprocessing: audio -----------------------------------------------------------
    Case("MelSpectrogram",
         "MelSpectrogram(fft_length = 64, sequence_stride = 32, num_mel_bins = 8)", AUDIO),
    Case("STFTSpectrogram", "STFTSpectrogram(frame_length = 32)",
         "input x: float32[256, 1]"),
    # -- preprocessing: images ----------------------------------------------------------
    Case("AugMix", "AugMix()", IMG),
    Case("AutoContrast", "AutoContrast()", IMG),
    Case("CenterCrop", "CenterCrop(4, 4)", IMG),
    Case("ContrastLimitedAdaptiveHistogramEqualization",
         "ContrastLimitedAdaptiveHistogramEqualization()", IMG),
    Case("CutMix", "CutMix()", IMG),
    # Keras 3.15's Equalization returns its input tensor itself when called on a symbolic
    # tensor, so a functional or sequential graph loses it ("… is part of a cycle");
    # a subclassed model calls it for real.
    Case("Equalization", "Equalization()", IMG, kind="subclass"),
    Case("MaxNumBoundingBoxes", "MaxNumBoundingBoxes(2)", IMG),
    Case("MixUp", "MixUp()", IMG),
    Case("RandAugment", "RandAugment()", IMG),
    Case("RandomBrightness", "RandomBrightness(0.1)", IMG),
    Case("RandomColorDegeneration", "RandomColorDegeneration(0.1)", IMG),
    Case("RandomColorJitter", "RandomColorJitter()", IMG),
    Case("RandomContrast", "RandomContrast(0.1)", IMG),
    Case("RandomCrop", "RandomCrop(4, 4)", IMG),
    Case("RandomElasticTransform", "RandomElasticTransform()", IMG),
    Case("RandomErasing", "RandomErasing()", IMG),
    Case("RandomFlip", "RandomFlip()", IMG),
    Case("RandomGaussianBlur", "RandomGaussianBlur()", IMG),
    Case("RandomGrayscale", "RandomGrayscale()", IMG),
    Case("RandomHue", "RandomHue(0.1)", IMG),
    Case("RandomInvert", "RandomInvert()", IMG),
    Case("RandomPerspective", "RandomPerspective()", IMG),
    Case("RandomPosterization", "RandomPosterization(4)", IMG),
    Case("RandomRotation", "RandomRotation(0.1)", IMG),
    Case("RandomSaturation", "RandomSaturation(0.1)", IMG),
    Case("RandomSharpness", "RandomSharpness(0.1)", IMG),
    Case("RandomShear", "RandomShear()", IMG),
    Case("RandomTranslation", "RandomTranslation(0.1, 0.1)", IMG),
    Case("RandomZoom", "RandomZoom(0.1)", IMG),
    Case("Resizing", "Resizing(4, 4)", IMG),
    Case("Solarization", "Solarization()", IMG),
]

# Wrappers and nested layer arguments beyond the minimal cases above.
WRAPPER_CASES = [
    pytest.param(Case("Bidirectional", 'Bidirectional(LSTM(4), merge_mode = "sum")', SEQ),
                 id="Bidirectional-merge_mode"),
    pytest.param(Case("Bidirectional", "Bidirectional(LSTM(4), backward_layer = "
                      "LSTM(4, go_backwards = true))", SEQ), id="Bidirectional-backward_layer"),
    pytest.param(Case("Bidirectional", "Bidirectional(GRU(2))", SEQ,
                      "x |> Bidirectional(LSTM(4, return_sequences = true)) "
                      "|> Bidirectional(GRU(2))"), id="Bidirectional-stacked"),
    pytest.param(Case("Bidirectional", "Bidirectional(LSTM(4))",
                      "input a: float32[6, 3]\ninput b: float32[6, 3]\n"
                      "layer encoder = Bidirectional(LSTM(4))",
                      "Concatenate()([encoder(a), encoder(b)])"), id="Bidirectional-shared"),
    pytest.param(Case("TimeDistributed", "TimeDistributed(Conv2D(4, 3))",
                      "input x: float32[3, 8, 8, 3]"), id="TimeDistributed-Conv2D"),
    pytest.param(Case("TimeDistributed", 'TimeDistributed(Dense(8, activation = "relu"))', SEQ,
                      "x |> LSTM(4, return_sequences = true) "
                      '|> TimeDistributed(Dense(8, activation = "relu"))'),
                 id="TimeDistributed-after-LSTM"),
    pytest.param(Case("RNN", "RNN([LSTMCell(4), GRUCell(4)])", SEQ), id="RNN-cell-list"),
    pytest.param(Case("RNN", "RNN(cell = SimpleRNNCell(4), return_sequences = true)", SEQ),
                 id="RNN-keyword-cell"),
    pytest.param(Case("SpectralNormalization", "SpectralNormalization(Conv2D(4, 3))", IMG),
                 id="SpectralNormalization-Conv2D"),
    pytest.param(Case("Dense", "Dense(4, kernel_initializer = HeNormal(seed = 1), "
                      "kernel_regularizer = L2(0.01), kernel_constraint = MaxNorm(2))", VEC),
                 id="Dense-nested-objects"),
    pytest.param(Case("Bidirectional",
                      'Bidirectional(LSTM(4, return_sequences = true), merge_mode = "sum")',
                      SEQ, kind="sequential",
                      then=("TimeDistributed(Dense(8))", "RNN(LSTMCell(4))")),
                 id="wrappers-sequential"),
    pytest.param(Case("Bidirectional", "Bidirectional(LSTM(4, return_sequences = true))", SEQ,
                      "x |> Bidirectional(LSTM(4, return_sequences = true)) "
                      "|> TimeDistributed(Dense(8)) |> RNN(StackedRNNCells([LSTMCell(4), "
                      "GRUCell(4)]))", kind="subclass"), id="wrappers-subclass"),
]

UNSUPPORTED: dict[str, str] = {
    "Lambda": "needs a Python function",
    "FlaxLayer": "needs a Flax module, a Python object that a spec cannot write",
    "JaxLayer": "needs JAX functions (`call_fn`, `init_fn`), Python code that a spec cannot write",
    "TorchModuleWrapper": "needs a PyTorch module (a Python object), and runs only on the "
                          "PyTorch backend",
    "Input": "a spec declares inputs with `input x: float32[…]`, not with `Input(…)`",
}


def case_of(entry) -> Case:
    """The Case of a CASES entry (a Case or a pytest.param around one)."""
    return entry if isinstance(entry, Case) else entry.values[0]

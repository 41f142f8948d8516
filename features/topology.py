"""Face-mesh topology as plain tuples of MediaPipe landmark indices.

Indices refer to MediaPipe's 478-point face landmark model (468 mesh points
plus 10 iris points). The lip rings follow MediaPipe's ``FACEMESH_LIPS``
connection set; each ring is listed in polygon order, so it can be drawn or
used as a polygon directly.
"""

# Outer lip contour, clockwise in the image starting at the right mouth corner
# of the image's left side (landmark 61).
OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409,
             291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
# Inner lip contour, same orientation, starting at landmark 78.
INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415,
             308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
LIP_POINTS = OUTER_LIP + INNER_LIP

# Pairs used by the mouth aspect ratios: (vertical pair, horizontal pair).
INNER_VERTICAL = (13, 14)
INNER_HORIZONTAL = (78, 308)
OUTER_VERTICAL = (0, 17)
OUTER_HORIZONTAL = (61, 291)

# Outer eye corners; their distance is the face scale (inter-ocular distance).
EYE_CORNERS = (33, 263)

# Left/right mirror partner of every lip landmark (a point on the mid-line
# is its own partner). Used to mirror lip sequences honestly.
_MIRROR_PAIRS = (
    (61, 291), (185, 409), (40, 270), (39, 269), (37, 267), (0, 0),
    (146, 375), (91, 321), (181, 405), (84, 314), (17, 17),
    (78, 308), (191, 415), (80, 310), (81, 311), (82, 312), (13, 13),
    (95, 324), (88, 318), (178, 402), (87, 317), (14, 14),
)
MIRROR = {**{a: b for a, b in _MIRROR_PAIRS}, **{b: a for a, b in _MIRROR_PAIRS}}
# For position i in LIP_POINTS, the position of its mirror partner.
LIP_MIRROR_ORDER = tuple(LIP_POINTS.index(MIRROR[p]) for p in LIP_POINTS)

# MediaPipe's 52 blendshape categories, in the order the model emits them.
BLENDSHAPE_NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp",
    "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthFunnel", "mouthLeft",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)
MOUTH_BLENDSHAPES = tuple(
    n for n in BLENDSHAPE_NAMES if n == "jawOpen" or n.startswith("mouth"))
MOUTH_BLENDSHAPE_INDEX = tuple(BLENDSHAPE_NAMES.index(n) for n in MOUTH_BLENDSHAPES)

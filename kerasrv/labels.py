"""Class names shared by the datasets and the zoo's cards (a leaf module: it imports nothing)."""

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Segmentation masks hold 0 for background and class id + 1 for an item's pixels.
SEGMENTATION_CLASSES = ("background",) + FASHION_MNIST_CLASSES

# Moving Fashion-MNIST motion labels: the direction the clip's items start moving in,
# counter-clockwise from east in image coordinates where y grows downwards ("north" = row 0).
MOTION_DIRECTIONS = (
    "east",
    "north-east",
    "north",
    "north-west",
    "west",
    "south-west",
    "south",
    "south-east",
)

# Fashion-MNIST regrouped into coarse categories: a task the zoo's entries were not trained for,
# used to show what fine-tuning from an entry's weights is worth.
COARSE_CLASSES = ("top", "trousers or dress", "footwear", "bag")
COARSE_OF_CLASS = (0, 1, 0, 1, 0, 2, 0, 2, 3, 2)  # Fashion-MNIST class id → coarse class id

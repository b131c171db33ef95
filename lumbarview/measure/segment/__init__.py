"""Semi-automatic segmentation on numpy arrays (Qt-free): the canal by click, bodies and discs by seeds."""

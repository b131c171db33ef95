"""The 3D pane (VTK): meshes, label surfaces, markers, the 2D views' planes and the cursor in LPS.

VTK's Qt widget must use PySide6 (the application's binding) even when another binding is
installed: say so before ``vtkmodules.qt.QVTKRenderWindowInteractor`` is imported.
"""

import vtkmodules.qt

vtkmodules.qt.PyQtImpl = "PySide6"

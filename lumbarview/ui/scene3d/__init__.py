"""The 3D pane (VTK): meshes, label surfaces, markers, the 2D views' planes and the cursor in LPS."""

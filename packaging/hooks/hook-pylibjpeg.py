# PyInstaller hook (packaging/hooks is the spec's hookspath): pylibjpeg finds its decoders and
# encoders (pylibjpeg-libjpeg for JPEG, pylibjpeg-openjpeg for JPEG 2000) through entry points in
# the plugin packages' metadata, and imports them by name. Without the metadata the frozen app
# reports "no decoder" for compressed DICOM pixel data; without the imports, the plugin modules
# are missing. pyinstaller-hooks-contrib has no hook for pylibjpeg (2026.9).
from importlib.metadata import PackageNotFoundError

from PyInstaller.utils.hooks import collect_submodules, copy_metadata

datas = copy_metadata("pylibjpeg")
hiddenimports: list[str] = []
for distribution, module in (("pylibjpeg-libjpeg", "libjpeg"), ("pylibjpeg-openjpeg", "openjpeg"),
                             ("pylibjpeg-rle", "rle")):
    try:
        datas += copy_metadata(distribution)
    except PackageNotFoundError:  # an optional plugin that is not installed
        continue
    hiddenimports += collect_submodules(module, filter=lambda name: ".tests" not in name)

"""Training data (sample photos, image folders, WebDataset shards) and the Kodak / CLIC2020 eval sets."""

from hific_lit.data.folder import ImageFolderDataModule
from hific_lit.data.sample import SampleDataModule, load_sample_photo
from hific_lit.data.webdataset_module import WebDataModule

__all__ = ["ImageFolderDataModule", "SampleDataModule", "WebDataModule", "load_sample_photo"]

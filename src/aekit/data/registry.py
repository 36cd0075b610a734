"""Where the downloadable datasets come from and how to check them (URLs, MD5s, class names).

Values come from /work/shared/datasets.md. The tables are plain module-level objects so tests can
point them at a local server or at the MD5s of the files they write.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IdxSet:
    """An MNIST-like dataset published as four IDX .gz files."""

    name: str
    base_urls: list[str]  # mirrors, tried in order
    md5: dict[str, str]  # file name -> MD5 of the .gz
    classes: list[str]
    files: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        }
    )


MNIST = IdxSet(
    name="mnist",
    base_urls=[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    classes=[str(d) for d in range(10)],
)

FASHION_MNIST = IdxSet(
    name="fashion-mnist",
    base_urls=["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    classes=[
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
    ],
)

IDX_SETS = {"mnist": MNIST, "fashion-mnist": FASHION_MNIST}


@dataclass
class CifarArchive:
    """The CIFAR-10 binary tarball (no pickle inside)."""

    urls: list[str]
    file: str
    md5: str
    classes: list[str]
    records: int = 10_000  # images in every official batch file, training and test alike


CIFAR10 = CifarArchive(
    urls=["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"],
    file="cifar-10-binary.tar.gz",
    md5="c32a1d4ab5d03f1284b67883e8d87530",
    classes=[
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
)

# MedMNIST v3 (Zenodo record 10519652). "{name}" is e.g. "pathmnist_64.npz".
MEDMNIST_URL = "https://zenodo.org/records/10519652/files/{name}?download=1"
MEDMNIST_SIZES = (28, 64, 128, 224)


def _by_size(*md5s: str | None) -> dict[int, str | None]:
    return dict(zip(MEDMNIST_SIZES, md5s, strict=True))


# flag -> MD5 per size (28, 64, 128, 224); None = no known MD5, used unverified with a warning.
MEDMNIST_MD5: dict[str, dict[int, str | None]] = {
    "pathmnist": _by_size(
        "a8b06965200029087d5bd730944a56c1",
        "55aa9c1e0525abe5a6b9d8343a507616",
        "ac42d08fb904d92c244187169d1fd1d9",
        "2c51a510bcdc9cf8ddb2af93af1eadec",
    ),
    "chestmnist": _by_size(
        "02c8a6516a18b556561a56cbdd36c4a8",
        "9de6cd0b934ebb5b7426cfba5efbae16",
        "db107e5590b27930b62dbaf558aebee3",
        "45bd33e6f06c3e8cdb481c74a89152aa",
    ),
    "dermamnist": _by_size(
        "0744692d530f8e62ec473284d019b0c7",
        "b70a2f5635c6199aeaa28c31d7202e1f",
        "2defd784463fa5243564e855ed717de1",
        "8974907d8e169bef5f5b96bc506ae45d",
    ),
    "octmnist": _by_size(
        "c68d92d5b585d8d81f7112f81e2d0842",
        "e229e9440236b774d9f0dfef9d07bdaf",
        "0a97e76651ace45c5d943ee3f65b63ae",
        "abc493b6d529d5de7569faaef2773ba3",
    ),
    "pneumoniamnist": _by_size(
        "28209eda62fecd6e6a2d98b1501bb15f",
        "8f4eceb4ccffa70c672198ea285246c6",
        "05b46931834c231683c68f40c47b2971",
        "d6a3c71de1b945ea11211b03746c1fe1",
    ),
    "retinamnist": _by_size(
        "bd4c0672f1bba3e3a89f0e4e876791e4",
        "afda852cc34dcda56f86ad2b2457dbcc",
        "e48e916a24454daf90583d4e6efb1a18",
        "eae7e3b6f3fcbda4ae613ebdcbe35348",
    ),
    "breastmnist": _by_size(
        "750601b1f35ba3300ea97c75c52ff8f6",
        "742edef2a1fd1524b2efff4bd7ba9364",
        "363e4b3f8d712e9b5de15470a2aaadf1",
        "b56378a6eefa9fed602bb16d192d4c8b",
    ),
    "bloodmnist": _by_size(
        "7053d0359d879ad8a5505303e11de1dc",
        "2b94928a2ae4916078ca51e05b6b800b",
        "adace1e0ed228fccda1f39692059dd4c",
        "b718ff6835fcbdb22ba9eacccd7b2601",
    ),
    "tissuemnist": _by_size(
        "ebe78ee8b05294063de985d821c1c34b",
        "123ece2eba09d0aa5d698fda57103344",
        "61b955355d7425a89687b06cca3ce0c2",
        "b077128c4a949f0a4eb01517f9037b9c",
    ),
    "organamnist": _by_size(
        "68e3f8846a6bd62f0c9bf841c0d9eacc",
        "2dcccc29b88e6da5a01161ef20cda288",
        "eeae80d0a227a8d099027e1b3cfd3b60",
        "50747347e05c87dd3aaf92c49f9f3170",
    ),
    # OrganC/OrganS are not in datasets.md's v3 table. These values come from a copy of the
    # MedMNIST v3 info.py whose other 40 MD5s all match datasets.md; the v2 28-size values
    # (0afa5834fb105f7705a7d93372119a21, e5c39f1af030238290b9557d9503af9d) cannot match v3:
    # the v3 release changed the organ sets (organamnist's MD5 changed, split sizes changed).
    "organcmnist": _by_size(
        "b9ceb9546e10131b32923c5bbeaea2b1",
        "3ce34a8724ea6f548e6db4744d03b6a9",
        "773c1f009daa3fe5d9a2a201b2a7ed94",
        "050f5e875dc056f6768abf94ec9995d1",
    ),
    "organsmnist": _by_size(
        "9ab87b696fb54e2a387ebe992d6ed5f1",
        "53a6d115339d874c25e309a994ff46d3",
        "ded0c5fa01a95dc4978b956f613e9b8e",
        "b354719e553fbbb2513d5533f52a4cb1",
    ),
}

_ORGANS = [
    "bladder",
    "femur-left",
    "femur-right",
    "heart",
    "kidney-left",
    "kidney-right",
    "liver",
    "lung-left",
    "lung-right",
    "pancreas",
    "spleen",
]

# Official MedMNIST v3 label names (INFO[flag]["label"]), in label order.
MEDMNIST_CLASSES: dict[str, list[str]] = {
    "pathmnist": [
        "adipose",
        "background",
        "debris",
        "lymphocytes",
        "mucus",
        "smooth muscle",
        "normal colon mucosa",
        "cancer-associated stroma",
        "colorectal adenocarcinoma epithelium",
    ],
    "chestmnist": [
        "atelectasis",
        "cardiomegaly",
        "effusion",
        "infiltration",
        "mass",
        "nodule",
        "pneumonia",
        "pneumothorax",
        "consolidation",
        "edema",
        "emphysema",
        "fibrosis",
        "pleural",
        "hernia",
    ],
    "dermamnist": [
        "actinic keratoses and intraepithelial carcinoma",
        "basal cell carcinoma",
        "benign keratosis-like lesions",
        "dermatofibroma",
        "melanoma",
        "melanocytic nevi",
        "vascular lesions",
    ],
    "octmnist": ["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"],
    "pneumoniamnist": ["normal", "pneumonia"],
    "retinamnist": ["0", "1", "2", "3", "4"],  # ordinal severity grades
    "breastmnist": ["malignant", "normal, benign"],
    "bloodmnist": [
        "basophil",
        "eosinophil",
        "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
        "lymphocyte",
        "monocyte",
        "neutrophil",
        "platelet",
    ],
    "tissuemnist": [
        "Collecting Duct, Connecting Tubule",
        "Distal Convoluted Tubule",
        "Glomerular endothelial cells",
        "Interstitial endothelial cells",
        "Leukocytes",
        "Podocytes",
        "Proximal Tubule Segments",
        "Thick Ascending Limb",
    ],
    "organamnist": _ORGANS,
    "organcmnist": _ORGANS,
    "organsmnist": _ORGANS,
}

MEDMNIST_MULTILABEL = {"chestmnist"}


def medmnist_file(flag: str, size: int) -> str:
    """The npz file name of a MedMNIST flag at a size: no suffix for 28."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def medmnist_url(flag: str, size: int) -> str:
    """The download URL of a MedMNIST npz."""
    return MEDMNIST_URL.format(name=medmnist_file(flag, size))

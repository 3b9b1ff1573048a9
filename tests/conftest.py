import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run tiny images: a second thread gains nothing, and on a busy machine it costs dearly."""
    torch.set_num_threads(1)

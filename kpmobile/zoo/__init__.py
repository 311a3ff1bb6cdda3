"""The model zoo: catalogue, building networks, conversion to Paddle Lite .nb / ONNX, complexity.

Nothing here imports paddle, ppdet or paddlelite in the caller's process: building,
converting and counting run in worker subprocesses (`build_worker`, `convert_worker`).
Entry points: `catalogue.resolve/list_models`, `build.ensure_model/model_hash`,
`convert.convert_nb/nb_header/check_nb_target/convert_onnx`, `complexity.model_info`.
"""

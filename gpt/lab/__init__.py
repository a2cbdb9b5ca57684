"""The Lab's services on top of the core and training: where models and data come from (`hub`,
`paths`, `sources`), what a model name means (`names`, `registry`, `cards`), and how a run is set
up and carried out (`runs`, `recipes`, `oneclick`). Imports only `gpt.train` and the core."""

"""The on-device runtime (DESIGN §6): backends that run the exported models, the streaming engine, the Avatar API.
``import parla.edge`` needs numpy only; runtimes load when a model is opened."""


def __getattr__(name: str):
    if name == "Avatar":
        from parla.edge.avatar import Avatar

        return Avatar
    raise AttributeError(name)

"""The live page: what the worker shows people while it runs (:mod:`streams.live.view`), and
the worker's loopback HTTP endpoint that serves it beside ``/metrics``
(:mod:`streams.live.server`)."""

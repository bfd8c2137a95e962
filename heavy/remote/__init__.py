"""What the shells that serve remote callers share, free of any web or protocol framework.

The proxy (:mod:`heavy.serve`), the MCP server (:mod:`heavy.mcp_server`) and the llm plugin each map their
own protocol onto :class:`heavy.Heavy`; the parts that are the same for all of them live here, so no shell
imports another:

* :mod:`.policy`: the operator's bounds on what a caller may set (code execution, ceilings, the models it may
  name, body checks);
* :mod:`.guard`: what stands between the network and an HTTP shell (web pages and DNS rebinding, body time and
  size, requests in flight per client);
* :mod:`.plan`: from what a caller asked to its run's settings, under the operator's rules (every run goes to the
  server's one :class:`heavy.Session`, so its limits hold whatever callers set);
* :mod:`.progress`: run events as short progress lines;
* :mod:`.summary`: a Result as a compact account of its decision;
* :mod:`.errors`: errors as a status, a code and a one-line message.
"""

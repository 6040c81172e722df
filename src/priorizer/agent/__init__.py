"""The rescue node agent (`priorizer node`): runs on volunteer machines. It talks to the server
over HTTP only, and imports none of the server's packages."""

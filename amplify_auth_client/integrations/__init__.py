"""One authentication core, plugged into each framework: import the one you use.

==========================================  ===================  ==============================
module                                      extra                gives
==========================================  ===================  ==============================
``amplify_auth_client.integrations.fastapi``  ``[fastapi]``      ``RequireScopes`` (a dependency)
``amplify_auth_client.integrations.asgi``     none               ``AuthMiddleware``
``amplify_auth_client.integrations.django``   ``[django]``,      ``require_scopes``;
                                              ``[drf]``          ``AmplifyTokenAuthentication``,
                                                                 ``HasScopes``
``amplify_auth_client.integrations.flask``    ``[flask]``        ``require_scopes``,
                                                                 ``AmplifyAuth``
``amplify_auth_client.integrations.grpc``     ``[grpc]``         ``AuthInterceptor``
==========================================  ===================  ==============================

Each hands the request's ``Authorization`` values and the route's
:class:`~amplify_auth_client.Policy` to the
:class:`~amplify_auth_client.Authenticator`, and sends back what it returns:
a :class:`~amplify_auth_client.Caller` for the handler, or the
:class:`~amplify_auth_client.Refusal`. So they accept and refuse alike (a
test runs one table of cases through all of them). Importing this package
loads no framework; importing an integration without its framework raises
an ImportError that names the extra to install.
"""

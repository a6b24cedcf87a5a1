"""Every MSNP error text in the project against the reference list of codes.

REFERENCE is the error list of the MSNP reference material (the seed deck's table, "200
Error de sintaxis … 928 Entrada incorrecta", with the IETF draft's ERR_* names): for each
code, words its meaning must contain. Where the deck's wording contradicts the code's
protocol name, the protocol name wins and the line says so.
"""

from __future__ import annotations

import pytest

from msnbridge.core.contact_commands import describe_error
from msnbridge.core.sessions import describe_login_error
from puppets import MSNPError
from puppets.errors import ERROR_MEANINGS

# code: (the deck's text, words the meaning must hold)
REFERENCE: dict[int, tuple[str, tuple[str, ...]]] = {
    200: ("Error de sintaxis", ("syntax",)),
    201: ("Parámetro incorrecto", ("invalid", "parameter")),
    205: ("Usuario incorrecto", ("invalid", "user")),
    206: ("Falta el nombre del dominio", ("domain", "missing")),
    207: ("Ya conectado", ("already", "logged in")),
    208: ("Nombre de usuario incorrecto", ("invalid", "user name")),
    209: ("Nick incorrecto", ("invalid", "nickname")),
    210: ("Lista de usuarios llena", ("list", "full")),
    215: ("El usuario ya estaba ahi", ("already", "list")),  # ERR_ALREADY_THERE
    # The deck says "ya existia en la lista" (already on the list): a slip; the code is
    # ERR_NOT_ON_LIST, and servers send it to REM of someone who is not there.
    216: ("El usuario ya existia en la lista", ("not on the list",)),
    217: ("El usuario no esta online", ("not online",)),
    218: ("Ya estabas en ese modo", ("already", "mode")),
    219: ("El usuario se encuentra en la lista contraria", ("opposite list",)),
    223: ("Demasiados grupos", ("too many groups",)),
    224: ("Grupo incorrecto", ("invalid group",)),
    225: ("El usuario no esta en el grupo", ("not in", "group")),
    229: ("Nombre del grupo demasiado largo", ("group name", "too long")),
    230: ("No se puede borrar el grupo 0", ("cannot remove group 0",)),
    231: ("Grupo incorrecto", ("invalid group",)),
    280: ("Fallo del switchboard", ("switchboard", "failed")),
    281: ("Transferencia al Notification Server fallida", ("notification server", "failed")),
    # The deck says "fichero" (file); the code is ERR_REQUIRED_FIELDS_MISSING.
    300: ("Falta fichero requerido", ("required field", "missing")),
    302: ("No estas registrado", ("not logged in",)),
    500: ("Error interno del servidor", ("internal server error",)),
    501: ("Error del servidor de bases de datos", ("database server error",)),
    502: ("El comando ha dejado de existir", ("command disabled",)),
    510: ("Error trabajando con fichero", ("file operation failed",)),
    520: ("Error de obtencion de memoria", ("memory allocation failed",)),
    540: ("Repuesta a reto fallida", ("challenge response failed",)),
    600: ("Servidor ocupado", ("server is busy",)),
    601: ("Servidor indisponible", ("unavailable",)),
    602: ("Caido el servidor de nombres", ("name server is down",)),
    603: ("Error en la conexion con la base de datos", ("database connection failed",)),
    604: ("Servidor cayéndose", ("going down",)),
    605: ("Servidor indisponible", ("unavailable",)),
    702: ("Localizacion incorrecta", ("invalid location",)),
    707: ("Error creando la conexion", ("could not create connection",)),
    710: ("Error en los parametros CVR", ("CVR",)),
    711: ("La escritura esta bloqueada", ("write is blocking",)),
    712: ("Sesion sobrecargada", ("session is overloaded",)),
    713: ("Demasiados usuarios activos", ("too many active users",)),
    714: ("Demasiadas sesiones", ("too many sessions",)),
    715: ("No esperado", ("not expected",)),
    717: ("Error en fichero de confianza", ("bad friend file",)),
    800: ("Cambiando demasiado rápido", ("changing too rapidly",)),
    910: ("Servidor ocupado", ("busy",)),
    911: ("Fallo la autenticacion", ("authentication failed",)),
    912: ("Servidor ocupado", ("busy",)),
    913: ("No permitido en estado offline", ("not allowed when offline",)),
    914: ("Servidor no disponible", ("unavailable",)),
    915: ("Servidor no disponible", ("unavailable",)),
    916: ("Servidor no disponible", ("unavailable",)),
    917: ("Autenticación fallida", ("authentication failed",)),
    918: ("Servidor ocupado", ("busy",)),
    919: ("Servidor ocupado", ("busy",)),
    920: ("No se aceptan nuevos usuarios", ("not accepting new users",)),
    921: ("Servidor ocupado", ("busy",)),
    922: ("Servidor ocupado", ("busy",)),
    923: ('Cuenta "kids" sin permiso paterno', ("Kids Passport", "parental consent")),
    924: ("Cuenta passport aun no verificada", ("not yet verified",)),
    928: ("Entrada incorrecta", ("bad ticket",)),  # "entrada": a ticket
}
# Codes of later versions and servers in the wild the deck does not list (240: ADL of an
# empty domain, MSNP13+; 731: libpurple).
EXTRA = {240, 731}


@pytest.mark.parametrize("code", sorted(REFERENCE))
def test_every_reference_code_has_its_meaning(code: int) -> None:
    meaning = ERROR_MEANINGS.get(code)
    assert meaning is not None, f"{code} ({REFERENCE[code][0]}) is missing"
    for words in REFERENCE[code][1]:
        assert words.lower() in meaning.lower(), f"{code}: {meaning!r} lacks {words!r}"


def test_no_code_outside_the_reference() -> None:
    assert set(ERROR_MEANINGS) - set(REFERENCE) == EXTRA


def test_already_and_not_on_the_list_are_told_apart() -> None:
    assert "not" not in ERROR_MEANINGS[215] and "already" not in ERROR_MEANINGS[216]


@pytest.mark.parametrize("code", sorted(REFERENCE))
def test_the_bridge_words_each_code_with_its_meaning(code: int) -> None:
    """The texts the bot answers with (commands, login) carry the table's meaning."""
    error = MSNPError(code, "REM")
    assert f"error {code}: {ERROR_MEANINGS[code]}" in describe_error(error)
    assert f"{code}: {ERROR_MEANINGS[code]}" in describe_login_error(error)
    assert str(error) == f"MSNP error {code} to REM: {ERROR_MEANINGS[code]}"

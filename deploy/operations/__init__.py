"""The engine's operations, for the service to call: deploy (plan or apply), status,
restart, snapshot, resize, the monitor's look at a server, and the hub's accounts.

One module per operation; what they share is ``deploy.engine``, re-exported here with
them so the service reaches the whole engine through this one name. Each operation
reports progress line by line and returns an ``OperationResult`` (conclusion, Markdown
summary, redacted log). Operations are idempotent: running one again after a crash or a
cut connection converges instead of repeating side effects.
"""

from deploy.engine import (
    UNREACHABLE,
    Engine,
    OperationError,
    course_home_volume,
    foreign_host_refusal,
    hostname_refusal,
    hub_url,
    known_server,
    observe_server,
    operation_result,
    provision,
    remembered_target,
    server_target,
    wait_for_ssh,
)
from deploy.operations.deploy_course import deploy, plan_from_config
from deploy.operations.hub_account_actions import (
    approve_students,
    discard_students,
    hub_accounts,
    reset_student_password,
    set_hub_password,
)
from deploy.operations.hub_restart import restart
from deploy.operations.monitor_look import look
from deploy.operations.server_resize import resize
from deploy.operations.server_snapshot import snapshot, snapshot_name
from deploy.operations.server_status import server_lines, status

__all__ = [
    "UNREACHABLE",
    "Engine",
    "OperationError",
    "approve_students",
    "course_home_volume",
    "deploy",
    "discard_students",
    "foreign_host_refusal",
    "hostname_refusal",
    "hub_accounts",
    "hub_url",
    "known_server",
    "look",
    "observe_server",
    "operation_result",
    "plan_from_config",
    "provision",
    "remembered_target",
    "reset_student_password",
    "resize",
    "restart",
    "server_lines",
    "server_target",
    "set_hub_password",
    "snapshot",
    "snapshot_name",
    "status",
    "wait_for_ssh",
]

"""The optional ``sparkplug:`` section of a board config (docs/sparkplug.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleet_link.sparkplug.topics import SparkplugTopicError, check_id


class SparkplugConfig(BaseModel):
    """A Sparkplug B 3.0 edge node beside the native namespace, on its own MQTT session to
    the broker of the ``mqtt:`` section. Absent (the default): no Sparkplug at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="false keeps the section but starts nothing")
    group_id: str | None = Field(
        None, description="Sparkplug group id (one topic level); default: the node's site id"
    )
    edge_node_id: str | None = Field(
        None, description="Sparkplug edge node id (one topic level); default: the node's id"
    )
    primary_host_id: str | None = Field(
        None,
        description="host application whose STATE (spBv1.0/STATE/<id>) gates the births: "
        "none are sent until it says online, and when it goes offline the node sends its "
        "NDEATH, disconnects and births again once the host is back",
    )
    client_id: str | None = Field(
        None, description="MQTT client id; default: the mqtt section's client id + '-spb'"
    )
    username: str | None = Field(
        None,
        description="credential of this second session; default: the mqtt section's. A broker "
        "with use_username_as_clientid (configs/mosquitto) needs a credential of its own here",
    )
    password_file: str | None = Field(None, description="file holding that user's password")
    sample_interval_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="how often the cell is looked at; a DDATA carries only the metrics that "
        "changed since the last one (report by exception)",
    )
    speed_deadband_mm_s: float = Field(
        10.0, ge=0, description="belt speed changes up to this are not reported"
    )
    commands: bool = Field(
        False,
        description="accept start/stop/reset as a DCMD to device 'cell' (Command/Start, "
        "Command/Stop, Command/Reset set true), with the same checks as cmd/start; off: "
        "limit who may write DCMD in the broker's ACL before turning this on",
    )
    bdseq_file: str | None = Field(
        None,
        description="where the bdSeq of the last session is kept across restarts; default: "
        "<node id>.sparkplug-bdseq beside the outbox",
    )

    @field_validator("group_id", "edge_node_id", "primary_host_id")
    @classmethod
    def _one_level(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            return check_id(value, "id")
        except SparkplugTopicError as exc:
            raise ValueError(str(exc)) from None

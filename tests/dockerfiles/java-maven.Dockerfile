# syntax=docker/dockerfile:1
# check=skip=JSONArgsRecommended
FROM maven:3.9-eclipse-temurin-21 AS build
WORKDIR /workspace
COPY pom.xml .
RUN --mount=type=cache,target=/root/.m2 mvn -B -q dependency:go-offline
COPY src ./src
RUN --mount=type=cache,target=/root/.m2 mvn -B -q package -DskipTests

FROM eclipse-temurin:21-jre
ARG JAR=/workspace/target/app.jar
COPY --from=build ${JAR} /opt/app.jar
EXPOSE 8080
ENTRYPOINT exec java $JAVA_OPTS -jar /opt/app.jar
